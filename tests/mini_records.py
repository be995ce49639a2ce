import pandas as pd

from converter.records.model import normalise_all
from converter.records.schema import load_forms


def mini_records():
    s = load_forms()
    r = {
     'ENROL': pd.DataFrame({'SUBJID':['1001','1002'],'SITEID':['MDA','MDA'],'CONSDT':['2012-01-02','2012-02-01'],'ENRLDT':['2012-01-05','2012-02-03'],'INVNAM':['Smith','Smith']}),
     'DEMOG': pd.DataFrame({'SUBJID':['1001','1002'],'BRTHDT':['1970','1950-03'],'AGE':[41,61],'SEX':['F','M'],'RACE':['WHITE','ASIAN'],'ETHNIC':['NOT HISPANIC OR LATINO','UNKNOWN'],'COUNTRY':['USA','USA']}),
     'DIAG': pd.DataFrame({'SUBJID':['1001','1002'],'DIAGDT':['2010-05','2011-01-10'],'SALVLN':['1','3+'],'PHSTAT':['NEGATIVE','POSITIVE'],'CYTOGEN':['DIPLOID','COMPLEX'],'BMBLAST':[65.0,80.5],'CD22PCT':[95.0,88.0],'WBC':[3.2,None],'NPRIOR':[1,3],'PRSCT':['N','Y'],'PRBLIN':['N','Y']}),
     'EXPOS': pd.DataFrame({'SUBJID':['1001','1001','1002'],'COURSE':[1,1,1],'DRUG':['INOTUZUMAB OZOGAMICIN','CYCLOPHOSPHAMIDE','INOTUZUMAB OZOGAMICIN'],'DAY':[3,1,3],'ADMDT':['2012-01-09','2012-01-07','2012-02-07'],'DOSE':[1.8,150,1.3],'DOSEU':['mg/m2','mg/m2','mg/m2'],'FREQ':['ONCE','Q12H','ONCE'],'ROUTE':['INTRAVENOUS']*3}),
     'RESP': pd.DataFrame({'SUBJID':['1001','1002'],'ASMDT':['2012-02-01','2012-03-01'],'COURSE':[1,1],'RESP':['CR','NR'],'BMBLAST':[1.0,50.0],'MRDRES':['NEGATIVE','POSITIVE'],'MRDLVL':[None,2.5]}),
     'AE': pd.DataFrame({'SUBJID':['1001','1001'],'AESPID':[1,2],'AETERM':['low platelets','VOD'],'AEPT':['Thrombocytopenia','Venoocclusive liver disease'],'AESOC':['Blood and lymphatic system disorders','Hepatobiliary disorders'],'AESTDT':['2012-01-15','2012-02'],'AEENDT':['2012-02-10',None],'AEGRADE':[4,3],'AESER':['N','Y'],'AEREL':['RELATED','RELATED'],'AEOUT':['RECOVERED/RESOLVED','RECOVERING/RESOLVING'],'AEVOD':['N','Y'],'AESHOSP':[None,'Y'],'AESLIFE':[None,'N'],'AESDTH':[None,'N']}),
     'LAB': pd.DataFrame({'SUBJID':['1001','1001'],'LBDT':['2012-01-04','2012-01-15'],'LBTEST':['PLAT','PLAT'],'LBVAL':[150.0,20.0],'LBUNIT':['10^9/L','10^9/L']}),
     'SCT': pd.DataFrame({'SUBJID':['1001'],'SCTDT':['2012-04-01'],'DONOR':['MATCHED RELATED']}),
     'RELAPSE': pd.DataFrame({'SUBJID':['1001'],'RELDT':['2013-01-01'],'RELSITE':['MARROW']}),
     'EOT': pd.DataFrame({'SUBJID':['1001','1002'],'EOTDT':['2012-03-20','2012-03-05'],'NCOURSE':[2,1],'EOTRSN':['TRANSPLANT','NO RESPONSE']}),
     'FU': pd.DataFrame({'SUBJID':['1001','1002'],'LSTALVDT':['2014-01-01','2012-05-01'],'FUSTAT':['ALIVE','DEAD']}),
     'DEATH': pd.DataFrame({'SUBJID':['1002'],'DTHDT':['2012-05-01'],'DTHCAUS':['DISEASE PROGRESSION']}),
    }
    return normalise_all(r, s)
